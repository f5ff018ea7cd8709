//! trackprint-server: arguments, startup, graceful shutdown.

use clap::Parser;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use trackprint_server::engine::{Limits, DEFAULT_MAX_BYTES, DEFAULT_MAX_DURATION_S};
use trackprint_server::error::ErrorCode;
use trackprint_server::http::{router, AppState};
use trackprint_server::limits::Gate;
use trackprint_server::metrics::Metrics;
use trackprint_server::paths::Roots;
use trackprint_server::serve::{self, ServeConfig, DEFAULT_BODY_TIMEOUT_MS, DEFAULT_HEADER_TIMEOUT_MS, DEFAULT_MAX_CONNECTIONS};

#[derive(Debug, Parser)]
#[command(name = "trackprint-server", version, about = "trackprint's fast fingerprint engine (HTTP, loopback by default)")]
struct Args {
    /// Address to listen on.
    #[arg(long, env = "TRACKPRINT_BIND", default_value = "127.0.0.1:7878")]
    bind: SocketAddr,
    /// A library root; repeatable. Paths resolving outside every root are refused.
    #[arg(long = "root", env = "TRACKPRINT_ROOTS", value_delimiter = ':', required_unless_present_any = ["list_error_codes", "decode"])]
    roots: Vec<PathBuf>,
    /// Allow symlinks in the library that lead outside every root (off: such
    /// a path is refused as outside_library, like a path outside the roots).
    #[arg(long, env = "TRACKPRINT_ALLOW_SYMLINKS_OUTSIDE", value_parser = clap::builder::BoolishValueParser::new())]
    allow_symlinks_outside: bool,
    /// Analyses at once (default: CPU cores); more requests get 503 busy.
    #[arg(long, env = "TRACKPRINT_MAX_CONCURRENCY")]
    max_concurrency: Option<usize>,
    /// Largest file accepted, bytes.
    #[arg(long, env = "TRACKPRINT_MAX_FILE_BYTES", default_value_t = DEFAULT_MAX_BYTES)]
    max_file_bytes: u64,
    /// Longest audio accepted, seconds.
    #[arg(long, env = "TRACKPRINT_MAX_DURATION_S", default_value_t = DEFAULT_MAX_DURATION_S)]
    max_duration_s: f64,
    /// Deadline for a request that does not send one, milliseconds.
    #[arg(long, env = "TRACKPRINT_DEFAULT_DEADLINE_MS", default_value_t = 300_000)]
    default_deadline_ms: u64,
    /// Time for a request head to arrive (from the connection's start or the
    /// previous answer), milliseconds; slower connections are closed.
    #[arg(long, env = "TRACKPRINT_HEADER_TIMEOUT_MS", default_value_t = DEFAULT_HEADER_TIMEOUT_MS,
          value_parser = clap::value_parser!(u64).range(1..))]
    header_timeout_ms: u64,
    /// Time for a request body to arrive once its head has, milliseconds; slower: 400 bad_request.
    #[arg(long, env = "TRACKPRINT_BODY_TIMEOUT_MS", default_value_t = DEFAULT_BODY_TIMEOUT_MS,
          value_parser = clap::value_parser!(u64).range(1..))]
    body_timeout_ms: u64,
    /// Connections held at once; more wait in the listen backlog until one closes.
    #[arg(long, env = "TRACKPRINT_MAX_CONNECTIONS", default_value_t = DEFAULT_MAX_CONNECTIONS,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1_000_000))]
    max_connections: usize,
    /// Print every error code the server knows, one per line in declaration order, and exit.
    #[arg(long)]
    list_error_codes: bool,
    /// Decode FILE with this engine's decoders and nothing else, write its samples to
    /// stdout (interleaved little-endian f32) and the decode facts to stderr (one JSON
    /// line), and exit: 0, or 1 with the typed error. For the decoder fidelity tests and
    /// the benchmark's decode-only figures; starts no server.
    #[arg(long, value_name = "FILE")]
    decode: Option<PathBuf>,
}

/// `--decode FILE`: samples to stdout, facts (or the error) to stderr.
fn decode_to_stdout(path: &std::path::Path, limits: &Limits) -> std::process::ExitCode {
    use std::io::Write;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::with_capacity(1 << 16, stdout.lock());
    let mut bytes = Vec::new();
    // the decoding's own time, without this process's start (about 50 ms: the dynamic libraries), so that
    // the benchmark's decode-only floor compares with a request to a running server
    let started = std::time::Instant::now();
    let result = trackprint_server::engine::decode_file(path, limits, |block| {
        bytes.clear();
        bytes.extend(block.iter().flat_map(|x| x.to_le_bytes()));
        out.write_all(&bytes).map_err(|e| {
            trackprint_server::error::AnalysisError::new(ErrorCode::IoError, "decode", format!("stdout: {e}"))
        })
    });
    let flushed = out.flush();
    match (result, flushed) {
        (Ok(facts), Ok(())) => {
            let seconds = started.elapsed().as_secs_f64();
            eprintln!("{}", serde_json::json!({"ok": true, "decode": facts, "seconds": seconds}));
            std::process::ExitCode::SUCCESS
        }
        (Err(e), _) => {
            eprintln!("{}", serde_json::json!({"ok": false, "error": {"code": e.code.as_str(), "stage": e.stage, "message": e.message}}));
            std::process::ExitCode::from(1)
        }
        (Ok(_), Err(e)) => {
            eprintln!("{}", serde_json::json!({"ok": false, "error": {"code": "io_error", "stage": "decode", "message": format!("stdout: {e}")}}));
            std::process::ExitCode::from(1)
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!("shutting down");
}

/// The one timestamp format of every trackprint log line (Python's trackprint.logs.timestamp too):
/// ISO 8601, UTC, milliseconds, `Z` (2026-11-30T04:21:26.250Z).
struct UtcMillis;

impl tracing_subscriber::fmt::time::FormatTime for UtcMillis {
    fn format_time(&self, w: &mut tracing_subscriber::fmt::format::Writer<'_>) -> std::fmt::Result {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        write!(w, "{}", iso_utc_millis(now.as_secs(), now.subsec_millis()))
    }
}

/// `secs` since the Unix epoch (+ `millis`) as `YYYY-MM-DDTHH:MM:SS.mmmZ` (civil-from-days, proleptic Gregorian).
fn iso_utc_millis(secs: u64, millis: u32) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z", rem / 3_600, rem % 3_600 / 60, rem % 60)
}

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_timer(UtcMillis)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())) // no colour codes in log files
        .init();
    let args = Args::parse();
    if args.list_error_codes {
        for code in ErrorCode::ALL {
            println!("{code}");
        }
        return std::process::ExitCode::SUCCESS;
    }
    if let Some(path) = &args.decode {
        return decode_to_stdout(path, &Limits { max_bytes: args.max_file_bytes, max_duration_s: args.max_duration_s });
    }
    let roots = match Roots::new(&args.roots) {
        Ok(r) => r.allowing_symlinks_outside(args.allow_symlinks_outside),
        Err(e) => {
            eprintln!("trackprint-server: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let max = args.max_concurrency.unwrap_or(cores).max(1);
    let state = Arc::new(AppState {
        roots,
        gate: Gate::new(max),
        limits: Limits { max_bytes: args.max_file_bytes, max_duration_s: args.max_duration_s },
        default_deadline_ms: args.default_deadline_ms,
        metrics: Metrics::default(),
        body_timeout: Duration::from_millis(args.body_timeout_ms),
    });
    let serve_config = ServeConfig {
        header_read_timeout: Duration::from_millis(args.header_timeout_ms),
        max_connections: args.max_connections,
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).max_blocking_threads(max + 4).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("trackprint-server: cannot start the runtime: {e}");
            return std::process::ExitCode::from(1);
        }
    };
    let result: std::io::Result<()> = runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(args.bind).await?;
        tracing::info!(bind = %listener.local_addr()?, max_concurrency = max, max_connections = serve_config.max_connections,
                       header_timeout_ms = args.header_timeout_ms, body_timeout_ms = args.body_timeout_ms,
                       roots = ?state.roots.list(), "trackprint-server listening");
        serve::serve(listener, router(state), serve_config, shutdown_signal()).await
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("trackprint-server: {e}");
            std::process::ExitCode::from(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::iso_utc_millis;

    #[test]
    fn timestamps_are_iso_utc_milliseconds() {
        assert_eq!(iso_utc_millis(0, 0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso_utc_millis(951_782_400, 7), "2000-02-29T00:00:00.007Z"); // a leap day
        assert_eq!(iso_utc_millis(1_796_012_486, 250), "2026-11-30T04:21:26.250Z");
    }
}
