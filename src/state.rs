//! The state every HTTP worker shares: settings, the engine (index and model),
//! the cache, the jobs, the feedback log and the rate limiter, with the two
//! signals the handlers send the background tasks. Its own module so the API
//! layer depends on it without depending on the assembly of the service
//! (`app.rs`), which depends on the API.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use governor::DefaultKeyedRateLimiter;
use tokio::sync::Notify;

use crate::cache::Cache;
use crate::engine::Engine;
use crate::feedback::FeedbackStore;
use crate::jobs::Jobs;
use crate::settings::Settings;

/// Per-client token buckets, keyed by a digest of the client's key or address
/// (`ratelimit.rs` fills and checks them).
pub type Limiter = DefaultKeyedRateLimiter<[u8; 16]>;

/// Shared by every worker.
pub struct AppState {
    pub settings: Arc<Settings>,
    pub engine: Arc<Engine>,
    pub cache: Cache,
    pub jobs: Arc<Jobs>,
    /// Set when `server.rate_limit_per_second` is.
    pub limiter: Option<Arc<Limiter>>,
    /// The cluster manager's accept / reject decisions (`/v1/feedback`).
    pub feedback: Arc<FeedbackStore>,
    pub(crate) changes: Arc<Notify>,
    /// Set from start-up until the first fit of a catalogue that has no model
    /// yet ends: recommendations cannot be answered, so the service is not ready.
    pub(crate) starting: Arc<AtomicBool>,
}

impl AppState {
    /// Tells the retrainer that profiles or ties changed.
    pub fn changed(&self) {
        self.changes.notify_one();
    }

    /// Whether the first model of the catalogue is still being fitted.
    pub fn is_starting(&self) -> bool {
        self.starting.load(Ordering::Acquire)
    }
}
