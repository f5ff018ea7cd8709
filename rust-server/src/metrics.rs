//! Prometheus text metrics: requests by outcome, errors by code, decode and
//! analysis seconds (sums and histograms), requests in flight.

use crate::error::ErrorCode;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Mutex;

const BUCKETS: [f64; 10] = [0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl Histogram {
    fn observe(&mut self, v: f64) {
        for (i, b) in BUCKETS.iter().enumerate() {
            if v <= *b {
                self.counts[i] += 1;
            }
        }
        self.count += 1;
        self.sum += v;
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        for (b, c) in BUCKETS.iter().zip(self.counts.iter()) {
            let _ = writeln!(out, "{name}_bucket{{le=\"{b}\"}} {c}");
        }
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {}", self.count);
        let _ = writeln!(out, "{name}_sum {}", self.sum);
        let _ = writeln!(out, "{name}_count {}", self.count);
    }
}

#[derive(Default)]
struct Inner {
    outcomes: BTreeMap<&'static str, u64>,
    decode: Histogram,
    analysis: Histogram,
}

#[derive(Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
    in_flight: AtomicI64,
}

/// Decrements the in-flight gauge when dropped (also on panic or cancellation).
pub struct InFlight<'a>(&'a Metrics);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Metrics {
    pub fn enter(&self) -> InFlight<'_> {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(self)
    }

    pub fn success(&self, decode_s: f64, analysis_s: f64) {
        let mut m = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        *m.outcomes.entry("ok").or_default() += 1;
        m.decode.observe(decode_s);
        m.analysis.observe(analysis_s);
    }

    pub fn failure(&self, code: ErrorCode) {
        let mut m = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        *m.outcomes.entry(code.as_str()).or_default() += 1;
    }

    pub fn render(&self) -> String {
        let m = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = String::new();
        out.push_str("# HELP trackprint_requests_total Fingerprint requests by outcome (ok or an error code).\n");
        out.push_str("# TYPE trackprint_requests_total counter\n");
        let _ = writeln!(out, "trackprint_requests_total{{outcome=\"ok\"}} {}", m.outcomes.get("ok").copied().unwrap_or(0));
        for code in ErrorCode::ALL {
            let n = m.outcomes.get(code.as_str()).copied().unwrap_or(0);
            let _ = writeln!(out, "trackprint_requests_total{{outcome=\"{}\"}} {n}", code.as_str());
        }
        out.push_str("# HELP trackprint_errors_total Failed fingerprint requests by error code.\n");
        out.push_str("# TYPE trackprint_errors_total counter\n");
        for code in ErrorCode::ALL {
            let n = m.outcomes.get(code.as_str()).copied().unwrap_or(0);
            let _ = writeln!(out, "trackprint_errors_total{{code=\"{}\"}} {n}", code.as_str());
        }
        m.decode.render(&mut out, "trackprint_decode_seconds", "Seconds spent decoding per successful request.");
        m.analysis.render(&mut out, "trackprint_analysis_seconds", "Seconds spent in feature analysis per successful request.");
        out.push_str("# HELP trackprint_in_flight Fingerprint requests being handled now.\n# TYPE trackprint_in_flight gauge\n");
        let _ = writeln!(out, "trackprint_in_flight {}", self.in_flight.load(Ordering::Relaxed));
        out
    }
}
