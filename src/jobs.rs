//! Background jobs the service runs for its admins and its own schedule: the
//! batch refresh and a model fit (`POST /v1/admin/train`), at most one of each
//! kind at a time, their progress while they run and their outcome after, and
//! the cron-style scheduler that starts the refresh nightly.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use serde::Serialize;
use serde_json::{Value, json};

use crate::engine::Engine;
use crate::refresh::{self, Progress, RefreshOptions};
use crate::settings::{Settings, parse_schedule};

/// Finished jobs kept for `GET /v1/admin/jobs/{id}`.
const KEEP_FINISHED: usize = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Running,
    Succeeded,
    Failed,
}

/// What a job does; one of each kind runs at a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JobKind {
    /// Every firm's partners (and networks) recomputed: [`refresh::run`].
    Refresh,
    /// A model fitted on the catalogue as it is and swapped in.
    Train,
}

impl JobKind {
    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::Refresh => "refresh",
            JobKind::Train => "train",
        }
    }

    /// The job in words: "a {noun} is already running".
    pub fn noun(self) -> &'static str {
        match self {
            JobKind::Refresh => "refresh",
            JobKind::Train => "model fit",
        }
    }
}

pub struct Job {
    pub id: String,
    pub kind: JobKind,
    trigger: &'static str,
    started_at: String,
    progress: Arc<Progress>,
    state: Mutex<JobState>,
}

struct JobState {
    status: Status,
    finished_at: Option<String>,
    error: Option<String>,
    outcome: Option<Value>,
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
            "kind": self.kind.as_str(),
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
    running: HashMap<JobKind, Arc<Job>>,
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
        let options = RefreshOptions {
            k: settings.refresh.k,
            redis_url: settings.cache.redis_url.as_ref().map(|url| url.expose().to_string()),
            key_prefix: settings.cache.key_prefix.clone(),
            export: None,
            chunk: refresh::CHUNK,
            networks: settings.refresh.networks,
        };
        let dir = refresh::refresh_dir(&settings.data.dir);
        self.start(JobKind::Refresh, trigger, move |progress| {
            let outcome = refresh::run(&engine, &dir, &options, progress).map_err(|error| error.to_string())?;
            Ok(serde_json::to_value(outcome).expect("serialisable"))
        })
    }

    /// Starts fitting a model on the blocking pool (serving goes on from the
    /// current one until the swap), or returns the fit job already running. The
    /// outcome is the model then serving, as `GET /v1/admin/model` shows it.
    pub fn start_train(self: &Arc<Self>, engine: Arc<Engine>, trigger: &'static str) -> Result<Arc<Job>, Arc<Job>> {
        self.start(JobKind::Train, trigger, move |progress| {
            progress.set_phase("fitting");
            let fitted = engine.fit();
            crate::memory::release_free_memory();
            fitted.map_err(|error| error.to_string())?;
            progress.set_phase("done");
            Ok(engine.model_info())
        })
    }

    /// Registers a job of `kind` and runs `work` on the blocking pool, unless one
    /// of that kind is still running (returned as the error).
    fn start(
        self: &Arc<Self>,
        kind: JobKind,
        trigger: &'static str,
        work: impl FnOnce(&Progress) -> Result<Value, String> + Send + 'static,
    ) -> Result<Arc<Job>, Arc<Job>> {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(running) = inner.running.get(&kind).filter(|job| job.status() == Status::Running) {
            return Err(running.clone());
        }
        let job = Arc::new(Job {
            id: uuid::Uuid::new_v4().to_string(),
            kind,
            trigger,
            started_at: crate::ingest::now_rfc3339(),
            progress: Arc::new(Progress::default()),
            state: Mutex::new(JobState { status: Status::Running, finished_at: None, error: None, outcome: None }),
        });
        inner.running.insert(kind, job.clone());
        inner.jobs.insert(job.id.clone(), job.clone());
        inner.order.push(job.id.clone());
        while inner.order.len() > KEEP_FINISHED {
            let oldest = inner.order.remove(0);
            inner.jobs.remove(&oldest);
        }
        drop(inner);

        let running = job.clone();
        let name = kind.as_str();
        tracing::info!(job = %job.id, kind = name, trigger, "job started");
        tokio::task::spawn_blocking(move || {
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work(&running.progress)));
            let mut state = running.state.lock().unwrap_or_else(|p| p.into_inner());
            state.finished_at = Some(crate::ingest::now_rfc3339());
            match result {
                Ok(Ok(outcome)) => {
                    state.status = Status::Succeeded;
                    state.outcome = Some(outcome);
                }
                Ok(Err(error)) => {
                    tracing::error!(job = %running.id, kind = name, %error, "job failed; serving the previous results");
                    state.status = Status::Failed;
                    state.error = Some(error);
                }
                Err(_) => {
                    tracing::error!(job = %running.id, kind = name, "job panicked; serving the previous results");
                    state.status = Status::Failed;
                    state.error = Some(format!("the {} panicked; see the service log", kind.noun()));
                }
            }
            let label = if state.status == Status::Succeeded { "succeeded" } else { "failed" };
            let counter = match kind {
                JobKind::Refresh => "klynge_refresh_jobs_total",
                JobKind::Train => "klynge_train_jobs_total",
            };
            metrics::counter!(counter, "status" => label).increment(1);
        });
        Ok(job)
    }
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
