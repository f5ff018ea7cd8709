//! The HTTP API (axum): POST /v1/fingerprint, GET /health, /ready, /metrics.

use crate::engine::{self, EngineOutput, Limits};
use crate::error::{AnalysisError, ErrorCode};
use crate::features::{DIMENSIONS, FINGERPRINT_VERSION};
use crate::limits::{self, Gate};
use crate::metrics::Metrics;
use crate::paths::Roots;
use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub struct AppState {
    pub roots: Roots,
    pub gate: Gate,
    pub limits: Limits,
    pub default_deadline_ms: u64,
    pub metrics: Metrics,
}

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
        .with_state(state)
}

impl IntoResponse for AnalysisError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = Json(json!({"error": {"code": self.code.as_str(), "message": self.to_string()}}));
        let mut response = (status, body).into_response();
        if self.code == ErrorCode::Busy {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

fn success_body(path: &str, out: &EngineOutput) -> Value {
    let mut fp = Map::new();
    for (name, value) in DIMENSIONS.iter().zip(out.fingerprint.0.iter()) {
        fp.insert((*name).to_string(), json!(value));
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

async fn fingerprint(State(state): State<Arc<AppState>>, body: Result<Json<FingerprintRequest>, JsonRejection>) -> Response {
    let _in_flight = state.metrics.enter();
    let result = match body {
        Ok(Json(request)) => run(&state, request).await,
        Err(rejection) => Err((String::new(), AnalysisError::new(ErrorCode::BadRequest, "request", rejection.body_text()))),
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
    let resolved = state.roots.resolve(&request.path).map_err(fail)?;
    let permit = state.gate.try_acquire().map_err(fail)?;
    let deadline = limits::deadline(request.deadline_ms, state.default_deadline_ms);
    let limits = state.limits;
    let display = request.path.clone();
    let task = tokio::task::spawn_blocking(move || {
        let _permit = permit; // released only when the work has stopped
        std::panic::catch_unwind(AssertUnwindSafe(|| engine::analyze_file(&resolved, &limits, Some(deadline))))
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
