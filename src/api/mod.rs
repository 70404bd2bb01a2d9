//! The HTTP API: route table, middleware (request ids, metrics, auth), and the
//! small helpers every handler shares. Handlers live in one file per resource;
//! none of them blocks the executor — index and model work goes through
//! [`blocking`].

use std::sync::Arc;
use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::Next;
use actix_web::{HttpRequest, HttpResponse, web};
use futures_util::StreamExt;

use crate::app::AppState;
use crate::error::ApiError;

pub mod collaborations;
pub mod console;
pub mod docs;
pub mod firms;
pub mod health;
pub mod jobs;
pub mod networks;
pub mod recommend;

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
pub const X_CACHE: HeaderName = HeaderName::from_static("x-cache");

pub fn routes(config: &mut web::ServiceConfig) {
    config
        .service(
            web::scope("/v1")
                .wrap(actix_web::middleware::from_fn(authorise))
                .service(
                    web::resource("/firms")
                        .route(web::get().to(firms::search))
                        .route(web::post().to(firms::bulk_upsert)),
                )
                .service(
                    web::resource("/firms/{id}")
                        .route(web::get().to(firms::get))
                        .route(web::put().to(firms::put))
                        .route(web::delete().to(firms::delete)),
                )
                .service(web::resource("/firms/{id}/partners").route(web::get().to(recommend::partners)))
                .service(web::resource("/firms/{id}/network").route(web::get().to(networks::around)))
                .service(web::resource("/shortlists").route(web::post().to(recommend::shortlist)))
                .service(web::resource("/networks").route(web::post().to(networks::create)))
                .service(web::resource("/admin/train").route(web::post().to(recommend::train)))
                .service(web::resource("/admin/model").route(web::get().to(recommend::model)))
                .service(web::resource("/admin/refresh").route(web::post().to(jobs::refresh)))
                .service(web::resource("/admin/jobs/{id}").route(web::get().to(jobs::get)))
                .service(web::resource("/collaborations").route(web::post().to(collaborations::create)))
                .service(web::resource("/collaborations/{id}").route(web::get().to(collaborations::get))),
        )
        .route("/health/live", web::get().to(health::live))
        .route("/health/ready", web::get().to(health::ready))
        .route("/metrics", web::get().to(health::metrics))
        .configure(docs::routes)
        .configure(console::routes);
}

/// Runs blocking work (tantivy, model scoring) on the blocking pool so that async
/// workers stay free.
pub async fn blocking<T, F>(work: F) -> Result<T, ApiError>
where
    F: FnOnce() -> Result<T, ApiError> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(work).await?
}

/// Reads the whole body, refusing it with a JSON 413 as soon as it passes the limit
/// (before reading it all when `Content-Length` already says so).
pub async fn read_body(request: &HttpRequest, mut payload: web::Payload, limit: usize) -> Result<web::Bytes, ApiError> {
    let too_large = || {
        ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", format!("request body is over {limit} bytes"))
    };
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<usize>().ok());
    if declared.is_some_and(|length| length > limit) {
        return Err(too_large());
    }
    let mut body = web::BytesMut::with_capacity(declared.unwrap_or(8 * 1024).min(limit));
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|error| ApiError::bad_request("bad_body", format!("cannot read body: {error}")))?;
        if body.len() + chunk.len() > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// Request id (taken from the caller or made), structured access log, and
/// Prometheus metrics labelled by route pattern so ids never explode the labels.
pub async fn observe(
    request: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let request_id = request
        .headers()
        .get(&REQUEST_ID)
        .and_then(|value| value.to_str().ok())
        .filter(|value| !value.is_empty() && value.len() <= 128 && value.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let method = request.method().clone();
    let path = request.path().to_string();
    let mut response = next.call(request).await?;
    let route = response.request().match_pattern().unwrap_or_else(|| "unmatched".to_string());
    let status = response.status().as_u16();
    let elapsed = started.elapsed();
    metrics::counter!("klynge_http_requests_total", "method" => method.to_string(), "route" => route.clone(), "status" => status.to_string()).increment(1);
    metrics::histogram!("klynge_http_request_duration_seconds", "method" => method.to_string(), "route" => route.clone()).record(elapsed.as_secs_f64());
    tracing::info!(request_id = %request_id, %method, %path, %route, status, elapsed_ms = elapsed.as_secs_f64() * 1e3, "request");
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    Ok(response)
}

/// Bearer-key check for `/v1`: writes always need a write key; reads need a read
/// (or write) key only when read keys are configured.
async fn authorise(
    request: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<actix_web::body::EitherBody<impl MessageBody>>, actix_web::Error> {
    let state = request.app_data::<web::Data<AppState>>().expect("state is registered").clone();
    let auth = &state.settings.auth;
    // Administration (training, refresh, model internals) always needs a write key.
    let is_admin = request.path().starts_with("/v1/admin");
    // Shortlists and networks are queries sent as POST bodies: they read, not write.
    let is_query = *request.method() == Method::POST && matches!(request.path(), "/v1/shortlists" | "/v1/networks");
    let is_read = !is_admin && (is_query || matches!(*request.method(), Method::GET | Method::HEAD | Method::OPTIONS));
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .map(str::trim);
    let matches = |keys: &[crate::settings::Secret]| {
        presented.is_some_and(|key| keys.iter().any(|known| constant_time_eq(known.expose(), key)))
    };
    let outcome = if is_read {
        if auth.read_keys.is_empty() || matches(&auth.read_keys) || matches(&auth.write_keys) {
            Ok(())
        } else if presented.is_none() {
            Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "reads need `Authorization: Bearer <read key>`",
            ))
        } else {
            Err(ApiError::new(StatusCode::FORBIDDEN, "forbidden", "this key may not read"))
        }
    } else if auth.write_keys.is_empty() {
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "writes_disabled",
            "no write key is configured (set auth.write_keys, e.g. KLYNGE__AUTH__WRITE_KEYS)",
        ))
    } else if matches(&auth.write_keys) {
        Ok(())
    } else if presented.is_none() {
        Err(ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", "writes need `Authorization: Bearer <write key>`"))
    } else {
        Err(ApiError::new(StatusCode::FORBIDDEN, "forbidden", "this key may not write"))
    };
    match outcome {
        Ok(()) => Ok(next.call(request).await?.map_into_left_body()),
        Err(error) => {
            let response = actix_web::ResponseError::error_response(&error);
            Ok(request.into_response(response).map_into_right_body())
        }
    }
}

/// Compares keys without returning early on the first differing byte.
fn constant_time_eq(known: &str, presented: &str) -> bool {
    let (a, b) = (known.as_bytes(), presented.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A JSON response from already-serialised bytes, with the cache outcome header.
pub fn json_bytes(body: Arc<[u8]>, cache: &'static str) -> HttpResponse {
    HttpResponse::Ok().content_type("application/json").insert_header((X_CACHE, cache)).body(body.to_vec())
}

/// Every unmatched path answers a JSON 404, not actix's empty body.
pub async fn not_found(request: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::not_found(format!("no route for {} {}", request.method(), request.path())))
}
