//! Batch jobs over REST: `POST /v1/admin/refresh` starts the refresh (409 while
//! one runs), `GET /v1/admin/jobs/{id}` follows it.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use serde_json::json;

use crate::app::AppState;
use crate::error::ApiError;

#[utoipa::path(post, path = "/v1/admin/refresh", tag = "admin",
    responses((status = 202, description = "the refresh job started; follow it at `Location`"),
        (status = 409, description = "a refresh is already running; `details.job_id` names it")),
    security(("bearer" = [])))]
pub async fn refresh(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    match state.jobs.start_refresh(state.engine.clone(), &state.settings, "api") {
        Ok(job) => Ok(HttpResponse::Accepted()
            .insert_header(("location", format!("/v1/admin/jobs/{}", job.id)))
            .json(job.view())),
        Err(running) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "refresh_running",
            format!("a refresh is already running: job {}", running.id),
        )
        .with_details(json!({ "job_id": running.id }))),
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
