//! `Application::build`: the one way to assemble the service, shared by `main`
//! and the integration tests (which bind port 0 and get the real thing).

use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::Notify;

use actix_cors::Cors;
use actix_web::dev::Server;
use actix_web::{App, HttpServer, web};
use klynge_index::FirmIndex;

use crate::api;
use crate::cache::Cache;
use crate::engine::Engine;
use crate::error::{ApiError, ErrorCode};
use crate::feedback::FeedbackStore;
use crate::jobs::Jobs;
use crate::settings::Settings;
pub use crate::state::AppState;
use crate::store::ModelStore;
use klynge_models::model::ModelParams;

/// Refits the model after writes, once they have been quiet for the debounce
/// period, so a bulk import of many batches costs one fit, not one per batch —
/// but never later than `max_wait` after the first unfitted write, so a steady
/// trickle of writes cannot keep the model stale for ever.
/// Serving goes on from the previous model until the new one is swapped in. At
/// start-up a missing or stale model is refitted at once: there is no burst of
/// writes to wait for. `starting` is cleared when that first fit ends, whether
/// it succeeded or not (a catalogue that cannot be fitted still serves search).
fn spawn_retrainer(
    engine: Arc<Engine>,
    changes: Arc<Notify>,
    (debounce, max_wait): (Duration, Duration),
    starting: Arc<AtomicBool>,
) {
    tokio::spawn(async move {
        let mut at_once = !engine.model_is_current();
        loop {
            if !at_once {
                changes.notified().await;
                let first_write = tokio::time::Instant::now();
                loop {
                    let left = max_wait.saturating_sub(first_write.elapsed());
                    if left.is_zero() || tokio::time::timeout(debounce.min(left), changes.notified()).await.is_err() {
                        break;
                    }
                }
            }
            at_once = false;
            let engine = engine.clone();
            let fitted = tokio::task::spawn_blocking(move || {
                let fitted = engine.fit();
                crate::memory::release_free_memory();
                fitted
            });
            match fitted.await {
                Ok(Ok(_)) => {}
                Ok(Err(error)) => tracing::error!(%error, "model refit failed; serving the previous model"),
                Err(error) => tracing::error!(%error, "model refit panicked; serving the previous model"),
            }
            starting.store(false, Ordering::Release);
        }
    });
}

pub struct Application {
    port: u16,
    server: Server,
}

impl Application {
    pub async fn build(settings: Settings) -> anyhow::Result<Application> {
        // Opening the index, replaying the feedback log and reading the saved
        // model are file work of seconds on a large catalogue: off the runtime.
        let data_dir = settings.data.dir.clone();
        let (engine, feedback) = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
            let index = FirmIndex::open(&data_dir.join("index"))?;
            let store = ModelStore::new(crate::engine::model_dir(&data_dir));
            let feedback = Arc::new(FeedbackStore::open(&crate::feedback::feedback_dir(&data_dir))?);
            let engine =
                Engine::new(Arc::new(index), Some(store), ModelParams::default()).with_feedback(feedback.clone());
            Ok((Arc::new(engine), feedback))
        })
        .await??;
        if let Some(model) = engine.model() {
            let (engine, dir, k) =
                (engine.clone(), crate::refresh::refresh_dir(&settings.data.dir), settings.refresh.k);
            match tokio::task::spawn_blocking(move || crate::refresh::load_current(&dir, &model, k)).await? {
                Ok(Some(precomputed)) => {
                    tracing::info!(generation = precomputed.generation, "serving the last refresh's partners");
                    engine.install(engine.model().expect("loaded"), Some(Arc::new(precomputed)));
                }
                Ok(None) => {}
                Err(error) => tracing::warn!(%error, "cannot load the last refresh's results; they will be recomputed"),
            }
        }
        if settings.server.demo {
            let engine = engine.clone();
            let loaded = tokio::task::spawn_blocking(move || crate::demo::load_if_empty(&engine)).await??;
            if loaded > 0 {
                tracing::info!(profiles = loaded, "loaded the demo catalogue");
            }
        }
        let cache = Cache::connect(&settings.cache).await;
        let listener = TcpListener::bind((settings.server.host.as_str(), settings.server.port)).map_err(|error| {
            anyhow::anyhow!("cannot listen on {}:{}: {error}", settings.server.host, settings.server.port)
        })?;
        let port = listener.local_addr()?.port();
        let settings = Arc::new(settings);
        crate::telemetry::prometheus();
        let changes = Arc::new(Notify::new());
        let starting = Arc::new(AtomicBool::new(false));
        if settings.models.retrain_debounce_seconds > 0 {
            let debounce = Duration::from_secs(settings.models.retrain_debounce_seconds);
            let max_wait = Duration::from_secs(settings.models.retrain_max_wait_seconds);
            let counting = engine.clone();
            let firms = tokio::task::spawn_blocking(move || counting.firm_count()).await??;
            starting.store(engine.model().is_none() && firms > 0, Ordering::Release);
            spawn_retrainer(engine.clone(), changes.clone(), (debounce, max_wait), starting.clone());
        }
        let jobs = Arc::new(Jobs::default());
        if let Some(pattern) = &settings.refresh.schedule {
            crate::jobs::spawn_scheduler(jobs.clone(), engine.clone(), settings.clone(), pattern);
        }
        let limiter =
            crate::ratelimit::limiter(settings.server.rate_limit_per_second, settings.server.rate_limit_burst);
        let state = web::Data::new(AppState {
            settings: settings.clone(),
            engine,
            cache,
            jobs,
            limiter,
            feedback,
            changes,
            starting,
        });
        let workers = match settings.server.workers {
            0 => std::thread::available_parallelism().map(usize::from).unwrap_or(2),
            n => n,
        };
        let server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .app_data(web::QueryConfig::default().error_handler(|error, _| {
                    ApiError::new(ErrorCode::BadQuery, format!("invalid query string: {error}")).into()
                }))
                .app_data(web::PathConfig::default().error_handler(|error, _| {
                    ApiError::new(ErrorCode::BadPath, format!("invalid path: {error}")).into()
                }))
                .wrap(actix_web::middleware::from_fn(api::authorise_docs))
                .wrap(cors(&state.settings.server.cors_origins))
                .wrap(actix_web::middleware::from_fn(api::observe))
                .configure(api::routes)
                .default_service(web::to(api::not_found))
        })
        .workers(workers)
        .client_request_timeout(Duration::from_millis(settings.server.client_request_timeout_ms))
        .shutdown_timeout(settings.server.shutdown_timeout_seconds)
        .listen(listener)?
        .run();
        Ok(Application { port, server })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }
}

fn cors(origins: &[String]) -> Cors {
    let base = Cors::default()
        .allowed_methods(["GET", "POST", "PUT", "DELETE", "OPTIONS"])
        .allowed_headers([
            actix_web::http::header::AUTHORIZATION,
            actix_web::http::header::CONTENT_TYPE,
            actix_web::http::header::ACCEPT,
        ])
        .expose_headers(["x-request-id", "x-cache"])
        .max_age(3600);
    if origins.iter().any(|origin| origin == "*") {
        return base.allow_any_origin();
    }
    origins.iter().fold(base, |cors, origin| cors.allowed_origin(origin))
}
