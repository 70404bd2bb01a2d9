//! Liveness, readiness and Prometheus metrics. Readiness reports the cache state
//! but never fails on it: a missing Redis slows the service, it does not stop it.
//! It does fail (503, `"status": "starting"`) while the first model of a
//! catalogue is being fitted, when recommendations would answer 503. It answers
//! states only (no weights, no model internals): it is open to anyone, and the
//! learnt model is an admin object (`GET /v1/admin/model`).

use actix_web::{HttpResponse, web};
use serde_json::json;

use crate::api::blocking;
use crate::error::ApiError;
use crate::state::AppState;

#[utoipa::path(get, path = "/health/live", tag = "health", responses((status = 200, body = Object)))]
pub async fn live() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "live" }))
}

#[utoipa::path(get, path = "/health/ready", tag = "health",
    responses((status = 200, body = Object, description = "ready: index, model and cache state"),
        (status = 503, body = Object, description = "starting: the first model is being fitted (same body, `status: starting`)")))]
pub async fn ready(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let engine = state.engine.clone();
    let (firms, generation) = blocking(move || Ok((engine.firm_count()?, engine.index_generation()))).await?;
    let cache_state = state.cache.state().await;
    // Checked before the model is read: the first fit installs its model before
    // it clears the flag, so a fit ending in between reads as starting with a
    // model, never as ready without one.
    let (mut reply, status) = if state.is_starting() {
        (HttpResponse::ServiceUnavailable(), "starting")
    } else {
        (HttpResponse::Ok(), "ready")
    };
    let model = state
        .engine
        .model()
        .map(|model| json!({ "generation": model.generation, "current": model.generation == generation }));
    Ok(reply.json(json!({
        "status": status,
        "index": { "firms": firms, "generation": generation },
        "model": model,
        "cache": { "backend": state.cache.backend_name(), "state": cache_state },
    })))
}

#[utoipa::path(get, path = "/metrics", tag = "health", responses((status = 200, description = "Prometheus text format")))]
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    let engine = state.engine.clone();
    if let Ok(Ok((bytes, firms))) = tokio::task::spawn_blocking(move || {
        Ok::<_, ApiError>((engine.index_size_on_disk(), engine.firm_count().unwrap_or(0)))
    })
    .await
    {
        metrics::gauge!("klynge_index_size_bytes").set(bytes as f64);
        metrics::gauge!("klynge_index_firms").set(firms as f64);
    }
    HttpResponse::Ok().content_type("text/plain; version=0.0.4").body(crate::telemetry::prometheus().render())
}
