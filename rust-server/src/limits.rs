//! Bounded concurrency and deadlines.
//!
//! One permit per analysis, taken with `try_acquire` so a saturated server
//! answers `busy` (503 + Retry-After) at once instead of queueing unbounded
//! work; the permit travels into the blocking task and is released only when
//! the work has really stopped.

use crate::error::{AnalysisError, ErrorCode, Result};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

#[derive(Debug, Clone)]
pub struct Gate {
    semaphore: Arc<Semaphore>,
    max: usize,
}

impl Gate {
    pub fn new(max: usize) -> Self {
        let max = max.max(1);
        Gate { semaphore: Arc::new(Semaphore::new(max)), max }
    }

    pub fn try_acquire(&self) -> Result<OwnedSemaphorePermit> {
        self.semaphore.clone().try_acquire_owned().map_err(|_| {
            AnalysisError::new(ErrorCode::Busy, "admit", format!("all {} analysis slots are busy; retry later", self.max))
        })
    }

    pub fn free(&self) -> usize {
        self.semaphore.available_permits()
    }

    pub fn max(&self) -> usize {
        self.max
    }
}

/// The instant a request must finish by.
pub fn deadline(requested_ms: Option<u64>, default_ms: u64) -> Instant {
    let ms = requested_ms.unwrap_or(default_ms).clamp(1, 24 * 3600 * 1000);
    Instant::now() + Duration::from_millis(ms)
}
