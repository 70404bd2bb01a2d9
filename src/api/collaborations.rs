//! `/v1/collaborations`: known ties between firms, which feed the tie signals.

use actix_web::{HttpRequest, HttpResponse, web};
use klynge_models::{Collaboration, validate_collaboration};
use serde_json::{Value, json};

use crate::api::firms::checked_id;
use crate::api::{blocking, read_body};
use crate::error::{ApiError, ErrorCode};
use crate::state::AppState;

#[utoipa::path(post, path = "/v1/collaborations", tag = "collaborations",
    request_body(content = Object, description = "{\"id\", \"title\"?, \"members\": [firm ids]}"),
    responses((status = 201, description = "stored"), (status = 422, description = "invalid, or members without a profile")),
    security(("bearer" = [])))]
pub async fn create(
    state: web::Data<AppState>,
    request: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body = read_body(&request, payload, state.settings.server.max_body_bytes).await?;
    let value: Value =
        serde_json::from_slice(&body).map_err(|error| ApiError::malformed(format!("malformed JSON: {error}")))?;
    let collaboration = validate_collaboration(&value).map_err(|errors| {
        let field = errors.first().map(|error| error.field.clone()).unwrap_or_default();
        ApiError::new(ErrorCode::ValidationFailed, "the collaboration is invalid")
            .with_field(field)
            .with_details(serde_json::to_value(errors).expect("serialisable"))
    })?;
    let engine = state.engine.clone();
    let collaboration = blocking(move || {
        let missing = engine.missing_firms(&collaboration.members)?;
        if !missing.is_empty() {
            return Err(ApiError::invalid("members", format!("{} members have no profile", missing.len()))
                .with_details(json!({ "unknown_ids": missing })));
        }
        engine.upsert_collaborations(std::slice::from_ref(&collaboration))?;
        Ok(collaboration)
    })
    .await?;
    state.changed();
    Ok(HttpResponse::Created().json(collaboration))
}

#[utoipa::path(get, path = "/v1/collaborations/{id}", tag = "collaborations",
    params(("id" = String, Path, description = "collaboration id")),
    responses((status = 200, description = "the collaboration"), (status = 404)))]
pub async fn get(state: web::Data<AppState>, path: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let id = checked_id(&path)?;
    let engine = state.engine.clone();
    let found: Option<Collaboration> = blocking({
        let id = id.clone();
        move || Ok(engine.collaboration(&id)?)
    })
    .await?;
    found
        .map(|collaboration| HttpResponse::Ok().json(collaboration))
        .ok_or_else(|| ApiError::not_found(format!("no collaboration with id `{id}`")))
}
