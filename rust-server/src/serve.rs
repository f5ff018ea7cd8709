//! The accept loop: HTTP/1.1 connections with a header-read timeout and a cap
//! on connections held at once.
//!
//! `axum::serve` exposes neither hyper's `header_read_timeout` nor a
//! connection limit, so a client that opened sockets and sent half a request
//! line held them (and a file descriptor and task each) forever. Here each
//! connection is served by hyper's HTTP/1 builder with a timer, so a request
//! head (or, on a kept-alive connection, the next one) that has not fully
//! arrived within `header_read_timeout` closes the connection; and a
//! connection takes a slot of a semaphore of `max_connections` before it is
//! accepted, so at most that many are held; the next ones wait in the
//! kernel's listen backlog until a slot frees (at the latest after the
//! header timeout), instead of exhausting file descriptors.
//!
//! Graceful shutdown: on the signal the listener closes, idle connections
//! close, in-flight requests finish, and `serve` returns once every
//! connection is gone.

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};

pub const DEFAULT_HEADER_TIMEOUT_MS: u64 = 10_000;
pub const DEFAULT_BODY_TIMEOUT_MS: u64 = 10_000;
pub const DEFAULT_MAX_CONNECTIONS: usize = 512;
/// hyper's read buffer per connection (its default is ~400 KiB): bounds what
/// a held connection can make the server buffer for a request head.
pub const MAX_READ_BUFFER_BYTES: usize = 64 * 1024;

#[derive(Debug, Clone, Copy)]
pub struct ServeConfig {
    /// Time for a request head to arrive, from the connection's start (or the previous response).
    pub header_read_timeout: Duration,
    /// Connections held at once (open, idle or busy).
    pub max_connections: usize,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            header_read_timeout: Duration::from_millis(DEFAULT_HEADER_TIMEOUT_MS),
            max_connections: DEFAULT_MAX_CONNECTIONS,
        }
    }
}

/// Serve `app` on `listener` until `shutdown` completes and every connection has closed.
pub async fn serve(listener: TcpListener, app: Router, config: ServeConfig, shutdown: impl Future<Output = ()>) -> io::Result<()> {
    let max = config.max_connections.clamp(1, Semaphore::MAX_PERMITS.min(u32::MAX as usize));
    let slots = Arc::new(Semaphore::new(max));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut builder = http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(config.header_read_timeout).max_buf_size(MAX_READ_BUFFER_BYTES);
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = slots.clone().acquire_owned() => permit.expect("the connection semaphore is never closed"),
            _ = &mut shutdown => break,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    accept_error(e).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let conn = builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(app.clone()));
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            let _slot = permit; // freed when the connection is gone
            tokio::pin!(conn);
            let result = tokio::select! {
                result = conn.as_mut() => result,
                _ = async { drop(stop.wait_for(|stopping| *stopping).await) } => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(e) = result {
                tracing::debug!(error = %e, "connection closed with an error");
            }
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    // every connection holds a slot until it is gone
    let _all = slots.acquire_many(max as u32).await;
    Ok(())
}

/// Connection-level failures are the client's; anything else (EMFILE, ENFILE,
/// ENOMEM) is logged and the loop pauses a moment, as hyper 0.14 did.
async fn accept_error(e: io::Error) {
    use io::ErrorKind::*;
    if matches!(e.kind(), ConnectionRefused | ConnectionAborted | ConnectionReset) {
        return;
    }
    tracing::error!(error = %e, "accept failed");
    tokio::time::sleep(Duration::from_millis(200)).await;
}
