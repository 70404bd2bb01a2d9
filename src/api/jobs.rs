//! Batch jobs over REST: `POST /v1/admin/refresh` starts the refresh and
//! `POST /v1/admin/train` a model fit (each 202 with the job, 409 while one of
//! its kind runs); `GET /v1/admin/jobs/{id}` follows either.

use actix_web::{HttpResponse, web};
use serde_json::json;

use crate::error::{ApiError, ErrorCode};
use crate::jobs::Job;
use crate::state::AppState;

#[utoipa::path(post, path = "/v1/admin/refresh", tag = "admin",
    responses((status = 202, description = "the refresh job started; follow it at `Location`"),
        (status = 409, description = "a refresh is already running; `details.job_id` names it")),
    security(("bearer" = [])))]
pub async fn refresh(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    started(state.jobs.start_refresh(state.engine.clone(), &state.settings, "api"), ErrorCode::RefreshRunning)
}

#[utoipa::path(post, path = "/v1/admin/train", tag = "admin",
    responses((status = 202, description = "the fit started; follow it at `Location`: its outcome is the model then serving"),
        (status = 409, description = "a fit job is already running; `details.job_id` names it")),
    security(("bearer" = [])))]
pub async fn train(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    started(state.jobs.start_train(state.engine.clone(), "api"), ErrorCode::TrainRunning)
}

/// 202 with the job and where to follow it, or `busy` naming the job of the
/// same kind still running.
fn started(job: Result<std::sync::Arc<Job>, std::sync::Arc<Job>>, busy: ErrorCode) -> Result<HttpResponse, ApiError> {
    match job {
        Ok(job) => Ok(HttpResponse::Accepted()
            .insert_header(("location", format!("/v1/admin/jobs/{}", job.id)))
            .json(job.view())),
        Err(running) => {
            Err(ApiError::new(busy, format!("a {} is already running: job {}", running.kind.noun(), running.id))
                .with_details(json!({ "job_id": running.id })))
        }
    }
}

#[utoipa::path(get, path = "/v1/admin/jobs/{id}", tag = "admin",
    params(("id" = String, Path, description = "job id")),
    responses((status = 200, description = "status, progress (done, rate, ETA) and outcome"), (status = 404)),
    security(("bearer" = [])))]
pub async fn get(state: web::Data<AppState>, path: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let job = state.jobs.get(&path).ok_or_else(|| ApiError::not_found(format!("no job with id `{path}`")))?;
    Ok(HttpResponse::Ok().json(job.view()))
}
