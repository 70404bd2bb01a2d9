//! Background jobs the service runs for its admins and its own schedule: the
//! batch refresh (one at a time), its progress while it runs and its outcome
//! after, and the cron-style scheduler that starts it nightly.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use croner::Cron;
use serde::Serialize;
use serde_json::{Value, json};

use crate::engine::Engine;
use crate::refresh::{self, Progress, RefreshOptions, RefreshOutcome};
use crate::settings::Settings;

/// Finished jobs kept for `GET /v1/admin/jobs/{id}`.
const KEEP_FINISHED: usize = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Running,
    Succeeded,
    Failed,
}

pub struct Job {
    pub id: String,
    trigger: &'static str,
    started_at: String,
    progress: Arc<Progress>,
    state: Mutex<JobState>,
}

struct JobState {
    status: Status,
    finished_at: Option<String>,
    error: Option<String>,
    outcome: Option<RefreshOutcome>,
}

impl Job {
    pub fn status(&self) -> Status {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).status
    }

    /// What the job API shows.
    pub fn view(&self) -> Value {
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let (rate, eta) = refresh::rate_and_eta(&self.progress);
        json!({
            "id": self.id,
            "kind": "refresh",
            "trigger": self.trigger,
            "status": state.status,
            "started_at": self.started_at,
            "finished_at": state.finished_at,
            "progress": {
                "phase": self.progress.phase(),
                "firms_total": self.progress.total.load(Ordering::Relaxed),
                "firms_done": self.progress.done.load(Ordering::Relaxed),
                "firms_resumed": self.progress.resumed.load(Ordering::Relaxed),
                "firms_per_second": (rate * 10.0).round() / 10.0,
                "eta_seconds": eta.filter(|_| state.status == Status::Running).map(f64::ceil),
            },
            "error": state.error,
            "outcome": state.outcome,
        })
    }
}

#[derive(Default)]
pub struct Jobs {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    jobs: HashMap<String, Arc<Job>>,
    order: Vec<String>,
    running: Option<Arc<Job>>,
}

impl Jobs {
    pub fn get(&self, id: &str) -> Option<Arc<Job>> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).jobs.get(id).cloned()
    }

    /// Starts a refresh on the blocking pool, or returns the one already running.
    pub fn start_refresh(
        self: &Arc<Self>,
        engine: Arc<Engine>,
        settings: &Settings,
        trigger: &'static str,
    ) -> Result<Arc<Job>, Arc<Job>> {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(running) = inner.running.as_ref().filter(|job| job.status() == Status::Running) {
            return Err(running.clone());
        }
        let job = Arc::new(Job {
            id: uuid::Uuid::new_v4().to_string(),
            trigger,
            started_at: crate::ingest::now_rfc3339(),
            progress: Arc::new(Progress::default()),
            state: Mutex::new(JobState { status: Status::Running, finished_at: None, error: None, outcome: None }),
        });
        inner.running = Some(job.clone());
        inner.jobs.insert(job.id.clone(), job.clone());
        inner.order.push(job.id.clone());
        while inner.order.len() > KEEP_FINISHED {
            let oldest = inner.order.remove(0);
            inner.jobs.remove(&oldest);
        }
        drop(inner);

        let options = RefreshOptions {
            k: settings.refresh.k,
            redis_url: settings.cache.redis_url.as_ref().map(|url| url.expose().to_string()),
            key_prefix: settings.cache.key_prefix.clone(),
            export: None,
            chunk: refresh::CHUNK,
            networks: settings.refresh.networks,
        };
        let dir = refresh::refresh_dir(&settings.data.dir);
        let running = job.clone();
        tracing::info!(job = %job.id, trigger, "refresh started");
        tokio::task::spawn_blocking(move || {
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                refresh::run(&engine, &dir, &options, &running.progress)
            }));
            let mut state = running.state.lock().unwrap_or_else(|p| p.into_inner());
            state.finished_at = Some(crate::ingest::now_rfc3339());
            match result {
                Ok(Ok(outcome)) => {
                    state.status = Status::Succeeded;
                    state.outcome = Some(outcome);
                }
                Ok(Err(error)) => {
                    tracing::error!(job = %running.id, %error, "refresh failed; serving the previous results");
                    state.status = Status::Failed;
                    state.error = Some(error.to_string());
                }
                Err(_) => {
                    tracing::error!(job = %running.id, "refresh panicked; serving the previous results");
                    state.status = Status::Failed;
                    state.error = Some("the refresh panicked; see the service log".to_string());
                }
            }
            let label = if state.status == Status::Succeeded { "succeeded" } else { "failed" };
            metrics::counter!("klynge_refresh_jobs_total", "status" => label).increment(1);
        });
        Ok(job)
    }
}

/// A five-field cron pattern (`minute hour day month weekday`), read in UTC.
pub fn parse_schedule(pattern: &str) -> Result<Cron, String> {
    if pattern.split_whitespace().count() != 5 {
        return Err(format!("`{pattern}` must have five fields: minute hour day month weekday"));
    }
    Cron::from_str(pattern).map_err(|error| format!("`{pattern}` is not a cron pattern: {error}"))
}

/// Starts the refresh whenever `pattern` matches; a refresh still running then is
/// left alone (the next match tries again).
pub fn spawn_scheduler(jobs: Arc<Jobs>, engine: Arc<Engine>, settings: Arc<Settings>, pattern: &str) {
    let cron = parse_schedule(pattern).expect("checked when settings were loaded");
    tokio::spawn(async move {
        loop {
            let now = chrono::Utc::now();
            let Ok(next) = cron.find_next_occurrence(&now, false) else {
                tracing::warn!("the refresh schedule never matches again");
                return;
            };
            tracing::info!(next = %next, "next scheduled refresh");
            let wait = (next - now).to_std().unwrap_or_default();
            tokio::time::sleep(wait).await;
            if let Err(running) = jobs.start_refresh(engine.clone(), &settings, "schedule") {
                tracing::warn!(job = %running.id, "scheduled refresh skipped: one is still running");
            }
        }
    });
}
