//! The HTTP API: route table, middleware (request ids, metrics, auth), and the
//! small helpers every handler shares. Handlers live in one file per resource;
//! none of them blocks the executor — index and model work goes through
//! [`blocking`].

use std::sync::Arc;
use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{HttpRequest, HttpResponse, web};
use futures_util::StreamExt;

use crate::error::{ApiError, ErrorCode};
use crate::state::AppState;

pub mod collaborations;
pub mod console;
pub mod contract;
pub mod docs;
pub mod feedback;
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
                .wrap(actix_web::middleware::from_fn(crate::ratelimit::limit))
                .service(
                    // Its own scope, so the write-key guard applies to whatever the
                    // router matched (`/v1/%61dmin/model` included), not to a raw path.
                    web::scope("/admin")
                        .wrap(actix_web::middleware::from_fn(authorise_admin))
                        .service(web::resource("/train").route(web::post().to(jobs::train)))
                        .service(web::resource("/model").route(web::get().to(recommend::model)))
                        .service(web::resource("/refresh").route(web::post().to(jobs::refresh)))
                        .service(web::resource("/jobs/{id}").route(web::get().to(jobs::get))),
                )
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
                .service(web::resource("/collaborations").route(web::post().to(collaborations::create)))
                .service(web::resource("/collaborations/{id}").route(web::get().to(collaborations::get)))
                .service(
                    web::resource("/feedback")
                        .route(web::get().to(feedback::list))
                        .route(web::post().to(feedback::create)),
                )
                .service(
                    web::resource("/feedback/{id}")
                        .route(web::get().to(feedback::get))
                        .route(web::delete().to(feedback::delete)),
                ),
        )
        // Resources, so another method gets 405 with `Allow`, as on `/v1`.
        .service(web::resource("/health/live").route(web::get().to(health::live)))
        .service(web::resource("/health/ready").route(web::get().to(health::ready)))
        .service(web::resource("/metrics").route(web::get().to(health::metrics)))
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

/// Runs a recommendation (retrieval, scoring, explanation) on the query pool:
/// one thread per core, off the executor like [`blocking`]. Under load the
/// blocking pool grows a thread per request in flight (32 connections, 32
/// threads on 2 cores), and their switching and cache misses were a tenth of an
/// uncached request; a pool the size of the machine queues them instead. Kept
/// apart from the global rayon pool, which fitting and the batch refresh fill.
pub async fn query<T, F>(work: F) -> Result<T, ApiError>
where
    F: FnOnce() -> Result<T, ApiError> + Send + 'static,
    T: Send + 'static,
{
    static POOL: std::sync::OnceLock<rayon::ThreadPool> = std::sync::OnceLock::new();
    let pool = POOL.get_or_init(|| {
        rayon::ThreadPoolBuilder::new()
            .thread_name(|i| format!("klynge-query-{i}"))
            .build()
            .expect("the query pool starts")
    });
    let (sender, receiver) = tokio::sync::oneshot::channel();
    pool.spawn(move || {
        // A panic is this request's 500, as on the blocking pool, not the process's end.
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(work));
        let _ = sender.send(outcome);
    });
    match receiver.await {
        Ok(Ok(result)) => result,
        Ok(Err(_)) => Err(ApiError::internal("a query panicked")),
        Err(closed) => Err(ApiError::internal(closed)),
    }
}

/// Reads the whole body, refusing it with a JSON 413 as soon as it passes the limit
/// (before reading it all when `Content-Length` already says so).
pub async fn read_body(request: &HttpRequest, mut payload: web::Payload, limit: usize) -> Result<web::Bytes, ApiError> {
    let too_large = || ApiError::new(ErrorCode::PayloadTooLarge, format!("request body is over {limit} bytes"));
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
        let chunk = chunk.map_err(|error| ApiError::new(ErrorCode::BadBody, format!("cannot read body: {error}")))?;
        if body.len() + chunk.len() > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// Request id (taken from the caller or made), structured access log, and
/// Prometheus metrics labelled by route pattern so ids never explode the labels.
/// A handler that panics is answered as a JSON 500 carrying the request id (and
/// counted in `klynge_panics_total`) instead of dropping the connection.
pub async fn observe(
    request: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<actix_web::body::EitherBody<impl MessageBody>>, actix_web::Error> {
    use futures_util::FutureExt;
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
    let mut response = if let Err(error) = check_query_string(request.query_string()) {
        let response = actix_web::ResponseError::error_response(&error);
        request.into_response(response).map_into_right_body()
    } else {
        match std::panic::AssertUnwindSafe(next.call(request)).catch_unwind().await {
            Ok(response) => response?.map_into_left_body(),
            Err(panic) => {
                let message = panic
                    .downcast_ref::<&str>()
                    .map(|text| text.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                tracing::error!(request_id = %request_id, %method, %path, panic = %message, "handler panicked");
                metrics::counter!("klynge_panics_total").increment(1);
                metrics::counter!("klynge_http_requests_total", "method" => method.to_string(), "route" => "panicked", "status" => "500").increment(1);
                // The request went into the panicked service, so there is no
                // request left to answer with; the server turns this error into
                // the JSON 500 on the same connection.
                return Err(ApiError::new(
                    ErrorCode::Internal,
                    format!("internal error (request id {request_id}); see the service log"),
                )
                .into());
            }
        }
    };
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

/// Longest query string accepted; every parameter the API takes fits well within.
const MAX_QUERY_BYTES: usize = 8 * 1024;

/// Refuses a query string that is too long or whose percent-decoding is not
/// UTF-8 (the form decoder would otherwise replace bad bytes silently and answer
/// a question the caller did not ask).
fn check_query_string(query: &str) -> Result<(), ApiError> {
    if query.len() > MAX_QUERY_BYTES {
        return Err(ApiError::new(
            ErrorCode::QueryTooLong,
            format!("the query string is over {MAX_QUERY_BYTES} bytes"),
        ));
    }
    for part in query.split('&').flat_map(|pair| pair.split('=')) {
        if percent_encoding::percent_decode_str(part).decode_utf8().is_err() {
            return Err(ApiError::new(ErrorCode::BadQuery, "the query string is not valid UTF-8 once percent-decoded"));
        }
    }
    Ok(())
}

/// What a request may need to present.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    Read,
    Write,
}

/// Bearer-key check for `/v1`: writes always need a write key; reads need a read
/// (or write) key only when read keys are configured. The route is judged on the
/// path the router matches (percent-decoded), never on the raw one.
async fn authorise(
    request: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<actix_web::body::EitherBody<impl MessageBody>>, actix_web::Error> {
    // Shortlists and networks are queries sent as POST bodies: they read, not write.
    let path = request.match_info().as_str();
    let is_query = *request.method() == Method::POST && matches!(path, "/v1/shortlists" | "/v1/networks");
    let access = if is_query || matches!(*request.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        Access::Read
    } else {
        Access::Write
    };
    pass_or_refuse(request, next, Some(access)).await
}

/// Administration (training, refresh, jobs, model internals) always needs a write
/// key, whatever the method.
async fn authorise_admin(
    request: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<actix_web::body::EitherBody<impl MessageBody>>, actix_web::Error> {
    pass_or_refuse(request, next, Some(Access::Write)).await
}

/// `/metrics`, `/openapi.json` and `/docs`: open by default; with read keys set
/// and `auth.open_docs = false`, a read key is needed. Wraps the whole app and
/// judges the decoded path, so no other route is touched.
pub async fn authorise_docs(
    request: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<actix_web::body::EitherBody<impl MessageBody>>, actix_web::Error> {
    let path = request.match_info().as_str();
    let is_docs = path == "/metrics" || path == "/openapi.json" || path == "/docs" || path.starts_with("/docs/");
    let open = request.app_data::<web::Data<AppState>>().is_none_or(|state| state.settings.auth.open_docs);
    let access = (is_docs && !open).then_some(Access::Read);
    pass_or_refuse(request, next, access).await
}

/// Calls the next service when the request may have `access` (or needs none),
/// else answers the JSON 401/403 itself.
async fn pass_or_refuse(
    request: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
    access: Option<Access>,
) -> Result<ServiceResponse<actix_web::body::EitherBody<impl MessageBody>>, actix_web::Error> {
    let refusal = access.and_then(|access| {
        let state = request.app_data::<web::Data<AppState>>().expect("state is registered");
        let presented = request.headers().get(header::AUTHORIZATION).and_then(|value| bearer_token(value.as_bytes()));
        check_key(&state.settings.auth, presented, access).err()
    });
    match refusal {
        None => Ok(next.call(request).await?.map_into_left_body()),
        Some(error) => {
            let response = actix_web::ResponseError::error_response(&error);
            Ok(request.into_response(response).map_into_right_body())
        }
    }
}

/// The token of an `Authorization: Bearer <token>` header; the scheme is
/// case-insensitive (RFC 9110 §11.1).
fn bearer_token(header: &[u8]) -> Option<&str> {
    let text = std::str::from_utf8(header).ok()?.trim();
    let (scheme, token) = text.split_once(char::is_whitespace)?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim()).filter(|token| !token.is_empty())
}

fn check_key(auth: &crate::settings::AuthSettings, presented: Option<&str>, access: Access) -> Result<(), ApiError> {
    let matches = |keys: &[crate::settings::Secret]| {
        // Every key is compared, so the time taken does not say which one matched.
        presented.is_some_and(|key| keys.iter().fold(false, |found, known| found | keys_equal(known.expose(), key)))
    };
    match access {
        Access::Read => {
            if auth.read_keys.is_empty() || matches(&auth.read_keys) || matches(&auth.write_keys) {
                Ok(())
            } else if presented.is_none() {
                Err(ApiError::new(ErrorCode::Unauthorized, "reads need `Authorization: Bearer <read key>`"))
            } else {
                Err(ApiError::new(ErrorCode::Forbidden, "this key may not read"))
            }
        }
        Access::Write => {
            if auth.write_keys.is_empty() {
                Err(ApiError::new(
                    ErrorCode::WritesDisabled,
                    "no write key is configured (set auth.write_keys, e.g. KLYNGE__AUTH__WRITE_KEYS)",
                ))
            } else if matches(&auth.write_keys) {
                Ok(())
            } else if presented.is_none() {
                Err(ApiError::new(ErrorCode::Unauthorized, "writes need `Authorization: Bearer <write key>`"))
            } else {
                Err(ApiError::new(ErrorCode::Forbidden, "this key may not write"))
            }
        }
    }
}

/// Compares keys in time that depends on neither their contents nor their
/// lengths: both are hashed to 32 bytes first, then every byte is compared.
fn keys_equal(known: &str, presented: &str) -> bool {
    use sha2::{Digest, Sha256};
    let (a, b) = (Sha256::digest(known.as_bytes()), Sha256::digest(presented.as_bytes()));
    a.iter().zip(b.iter()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A JSON response from already-serialised bytes, with the cache outcome header.
pub fn json_bytes(body: Arc<[u8]>, cache: &'static str) -> HttpResponse {
    // The cached answer itself is sent, not a copy of it (a partner list is ~20 kB).
    HttpResponse::Ok()
        .content_type("application/json")
        .insert_header((X_CACHE, cache))
        .body(web::Bytes::from_owner(body))
}

/// Longest opportunity text a request may carry (the spec's `maxLength`).
pub const MAX_OPPORTUNITY: usize = 5000;

/// An opportunity text as shortlists, networks and feedback take it: the limit
/// counts the text as sent (as `maxLength` does), then surrounding spaces go and
/// a blank text is `None`; each caller decides what a blank one means.
pub fn opportunity_text(raw: &str) -> Result<Option<String>, ApiError> {
    if raw.chars().count() > MAX_OPPORTUNITY {
        return Err(ApiError::invalid(
            "opportunity",
            format!("opportunity must be at most {MAX_OPPORTUNITY} characters"),
        ));
    }
    Ok(Some(raw.trim().to_string()).filter(|t| !t.is_empty()))
}

/// Every unmatched path answers a JSON 404, not actix's empty body.
pub async fn not_found(request: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::not_found(format!("no route for {} {}", request.method(), request.path())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::StatusCode;

    #[actix_web::test]
    async fn a_panicking_handler_is_answered_as_json_500_with_the_request_id() {
        use actix_web::{App, test};
        let app = test::init_service(
            App::new()
                .wrap(actix_web::middleware::from_fn(observe))
                .route("/boom", web::get().to(|| async { panic!("boom") as HttpResponse })),
        )
        .await;
        let request = test::TestRequest::get().uri("/boom").insert_header((REQUEST_ID, "probe-1")).to_request();
        // The server answers a service error with its response, on the same connection.
        let Err(error) = test::try_call_service(&app, request).await else {
            panic!("a panicking handler must end as an error response");
        };
        let response = error.error_response();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = actix_web::body::to_bytes(response.into_body()).await.unwrap();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["error"]["code"], "internal");
        assert!(body["error"]["message"].as_str().unwrap().contains("probe-1"), "{body}");
    }

    #[test]
    fn query_strings_must_decode_to_utf8() {
        assert!(check_query_string("q=caf%C3%A9&limit=5").is_ok());
        assert!(check_query_string("").is_ok());
        assert!(check_query_string("q=%FF").is_err());
        assert!(check_query_string("q=%C3").is_err());
        assert!(check_query_string(&"q=a".repeat(5000)).is_err());
    }

    #[test]
    fn bearer_scheme_is_case_insensitive() {
        assert_eq!(bearer_token(b"Bearer abc"), Some("abc"));
        assert_eq!(bearer_token(b"bearer abc"), Some("abc"));
        assert_eq!(bearer_token(b"BEARER   abc "), Some("abc"));
        assert_eq!(bearer_token(b"Basic abc"), None);
        assert_eq!(bearer_token(b"Bearer"), None);
        assert_eq!(bearer_token(b"Bearer \xff"), None);
    }

    #[test]
    fn keys_compare_whatever_their_length() {
        assert!(keys_equal("dev-write-key", "dev-write-key"));
        assert!(!keys_equal("dev-write-key", "dev-write-ke"));
        assert!(!keys_equal("dev-write-key", ""));
        assert!(!keys_equal("dev-write-key", &"x".repeat(10_000)));
    }
}
